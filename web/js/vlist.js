// A virtual list of fixed-height rows: only the rows in view (plus a few) are in the DOM,
// so 50,000 rows cost what 60 do. Rows are pooled: row i always uses node i % pool size
// and is placed with a transform, so scrolling re-renders only the rows that came into view.

export class VirtualList {
  /**
   * scroller: the element that scrolls (overflow: auto).
   * create(): a new row node; render(node, index): fill it for row index.
   */
  constructor(scroller, { rowHeight, create, render, overscan = 6 }) {
    this.scroller = scroller;
    this.rowHeight = rowHeight;
    this.create = create;
    this.renderRow = render;
    this.overscan = overscan;
    this.count = 0;
    this.pool = [];
    this.sizer = document.createElement("div");
    this.sizer.className = "vl-sizer";
    this.sizer.style.position = "relative";
    scroller.append(this.sizer);
    scroller.addEventListener("scroll", () => this.render(false), { passive: true });
    this.resizer = new ResizeObserver(() => this.render(false));
    this.resizer.observe(scroller);
  }

  setCount(count) {
    this.count = count;
    this.sizer.style.height = `${count * this.rowHeight}px`;
    this.render(true);
  }

  /** The first and last row indexes in view (not counting overscan). */
  range() {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight;
    const first = Math.floor(top / this.rowHeight);
    const last = Math.min(this.count - 1, Math.ceil((top + height) / this.rowHeight) - 1);
    return [first, last];
  }

  /** Draw the rows in view; force: redraw them all (the data changed). */
  render(force = true) {
    const height = this.scroller.clientHeight || 600;
    const size = Math.ceil(height / this.rowHeight) + 2 * this.overscan + 1;
    while (this.pool.length < size) {
      const node = this.create();
      node.style.position = "absolute";
      node.style.left = "0";
      node.style.right = "0";
      node.style.height = `${this.rowHeight}px`;
      node._index = -1;
      this.sizer.append(node);
      this.pool.push(node);
    }
    if (this.pool.length > size) {
      for (const node of this.pool.splice(size)) node.remove();
      for (const node of this.pool) node._index = -1;
    }
    const [first] = this.range();
    const from = Math.max(0, first - this.overscan);
    const to = Math.min(this.count - 1, from + size - 1);
    const pool = this.pool;
    for (let i = from; i <= to; i++) {
      const node = pool[i % size];
      if (node._index !== i || force) {
        if (node._index !== i) node.style.transform = `translateY(${i * this.rowHeight}px)`;
        node._index = i;
        node.hidden = false;
        this.renderRow(node, i);
      }
    }
    for (const node of pool) {
      if (node._index < from || node._index > to) {
        node.hidden = true;
        node._index = -1;
      }
    }
  }

  /** The node showing row index, if it is in the DOM. */
  nodeFor(index) {
    const node = this.pool.find((n) => n._index === index);
    return node || null;
  }

  /** Scroll so row index is in view: "nearest" (the least movement) or "center". */
  scrollTo(index, align = "nearest") {
    const top = index * this.rowHeight;
    const view = this.scroller.clientHeight;
    const now = this.scroller.scrollTop;
    let next = now;
    if (align === "center") next = top - (view - this.rowHeight) / 2;
    else if (top < now) next = top;
    else if (top + this.rowHeight > now + view) next = top + this.rowHeight - view;
    next = Math.max(0, Math.min(next, this.count * this.rowHeight - view));
    if (Math.abs(next - now) > 0.5) this.scroller.scrollTop = next;
    this.render(false);
  }

  destroy() {
    this.resizer.disconnect();
    this.sizer.remove();
  }
}
