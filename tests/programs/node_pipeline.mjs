// A nested run traced by the Node.js client (clients/node) into the daemon that
// TRACEFORGE_ADDRESS names; tests/test_node_client.py checks what the daemon stored.
// Prints one JSON line: the ids it made, the times it sent and what it observed.
import { flush, init, stats, traceRun, traceStep } from "../../clients/node/src/index.js";

const label = process.argv[2];
const T0 = 1767225600123456789n; // 2026-01-01, with nanoseconds a double could not hold
const TICK = 1_000_000_007n;
const times = [];
let now = T0;
init({ clock: () => { now += TICK; times.push(now); return now; } });

const big = "λ".repeat(300_000); // 600,000 bytes of UTF-8 in one input
const result = { pid: process.pid };
await traceRun(`résumé ✓ 日本語 🚀 ${label}`, async (runId) => {
  result.run_id = runId;
  await traceStep("plan — étape 1", async (step) => {
    result.plan = step.stepId;
    step.tokensInput = 1200;
    step.tokensOutput = 345;
    step.tokensCacheRead = 50;
    step.tokensCacheWrite = 7;
    step.costUsd = 0.0123;
    step.model = "claude-haiku-4-5";
    await new Promise((resolve) => setTimeout(resolve, 5));
    await traceStep("lookup 🔎", async (inner) => {
      result.lookup = inner.stepId;
      await Promise.resolve();
      inner.output = { hits: [1, 2, 3] };
    }, { input: { big } });
    return { plan: ["a", "b"] };
  }, { input: { question: "¿qué?" }, metadata: { attempt: 1 }, model: "claude-sonnet-4-6" });
  try {
    await traceStep("flaky", async (step) => {
      result.flaky = step.stepId;
      throw new RangeError("upstream timed out ⏱");
    });
  } catch (error) {
    result.rethrown = error instanceof RangeError && error.message === "upstream timed out ⏱";
  }
  result.tool_result = traceStep("tool", (step) => { result.tool = step.stepId; return 42; });
  traceStep("local_llm", (step) => {
    result.local_llm = step.stepId;
    step.tokensInput = 10;
    step.model = "my-own-llm"; // no cost known: unpriced
  });
}, { metadata: { user: "ada" } });
result.flushed = await flush(20_000);
result.times = times.map(String);
result.stats = stats();
console.log(JSON.stringify(result));
