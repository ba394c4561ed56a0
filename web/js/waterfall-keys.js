// The waterfall's keys (the ? overlay lists them): arrows move and fold, Enter opens.

export const KEYS = [
  ["↑ ↓  or  k j", "previous / next step"],
  ["Home  End  PgUp  PgDn", "first / last / a page up or down"],
  ["→  or  l", "open a subtree, then go to its first step"],
  ["←  or  h", "close a subtree, or go to the parent"],
  ["Enter  Space", "open the step's detail"],
  ["]  [", "expand all / collapse all"],
  ["1 … 9", "show that many levels"],
  ["e  E", "next / previous failed step"],
  ["n  N", "next / previous filter match"],
  ["/", "filter the steps"],
  ["t", "tokens and cost view; w: waterfall"],
];

export function handleKey(wf, event) {
  if (event.altKey || event.ctrlKey || event.metaKey || !wf.model || !wf.rows.length) return;
  const step = wf.model.steps[wf.rows[wf.cursor]];
  const page = Math.max(1, Math.floor(wf.body.clientHeight / 24) - 1);
  const open = step && step.children && !step.closed;
  let handled = true;
  switch (event.key) {
    case "ArrowDown": case "j": wf.focusRow(wf.cursor + 1); break;
    case "ArrowUp": case "k": wf.focusRow(wf.cursor - 1); break;
    case "Home": wf.focusRow(0); break;
    case "End": wf.focusRow(wf.rows.length - 1); break;
    case "PageDown": wf.focusRow(wf.cursor + page); break;
    case "PageUp": wf.focusRow(wf.cursor - page); break;
    case "ArrowRight": case "l":
      if (step.children && step.closed && !wf.keep) {
        wf.toggle(step.i, true);
        wf.focusRow(wf.cursor);
      } else if (step.children) wf.focusRow(wf.cursor + 1);
      break;
    case "ArrowLeft": case "h":
      if (open && !wf.keep) {
        wf.toggle(step.i, false);
        wf.focusRow(wf.cursor);
      } else if (step.parent >= 0) {
        const row = wf.rows.indexOf(step.parent);
        if (row >= 0) wf.focusRow(row);
      }
      break;
    case "Enter": case " ":
      wf.select(step.i, { scroll: "nearest" });
      wf.focusRow(wf.cursor);
      break;
    case "]": wf.openToLevel(Infinity); wf.focusRow(wf.cursor); break;
    case "[": wf.openToLevel(1); wf.focusRow(wf.cursor); break;
    case "e": wf.nextError(1); break;
    case "E": wf.nextError(-1); break;
    case "n": wf.nextMatch(1); break;
    case "N": wf.nextMatch(-1); break;
    default:
      if (/^[1-9]$/.test(event.key)) {
        wf.openToLevel(Number(event.key));
        wf.focusRow(wf.cursor);
      } else handled = false;
  }
  if (handled) {
    event.preventDefault();
    event.stopPropagation();
  }
}
