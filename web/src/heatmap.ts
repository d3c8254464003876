// The page map of one RAMBlock: one cell per page (or per run of pages for large blocks), coloured by
// how often or how the pages were sent. Drawn 1 pixel per cell and scaled by CSS (image-rendering: pixelated).
import { h, hex } from './dom.js';
import { KINDS, type BlockLayout, type StreamModel } from './protocol.js';

export const KIND_COLOURS = ['#94a3b8', '#2563eb', '#d97706', '#059669', '#7c3aed'];
const UNSENT: [number, number, number] = [241, 245, 249];
/** Light yellow to dark red: times sent, on a log scale. */
const HEAT = ['#fde68a', '#fbbf24', '#f59e0b', '#ea580c', '#dc2626', '#991b1b', '#450a0a'];

const rgb = (c: string): [number, number, number] => [parseInt(c.slice(1, 3), 16), parseInt(c.slice(3, 5), 16), parseInt(c.slice(5, 7), 16)];

export type HeatMode = 'sent' | 'last';

export interface HeatMapOptions {
  onSelect(page: number): void;
}

export class HeatMap {
  readonly el: HTMLElement;
  readonly cols: number;
  readonly pagesPerCell: number;
  readonly cells: number;
  private readonly canvas: HTMLCanvasElement;
  private readonly cursor: HTMLElement;
  private pos = 0;

  constructor(
    private readonly model: StreamModel,
    readonly block: BlockLayout,
    private mode: HeatMode,
    private readonly opts: HeatMapOptions,
  ) {
    // At most 128 × 128 cells: a 1 GiB block shows 16 pages per cell.
    this.cols = Math.min(128, Math.max(1, block.pages));
    this.pagesPerCell = Math.max(1, Math.ceil(block.pages / (128 * 128)));
    this.cells = Math.ceil(block.pages / this.pagesPerCell);
    const rows = Math.ceil(this.cells / this.cols);
    this.canvas = h('canvas', {
      width: this.cols,
      height: rows,
      tabindex: 0,
      'aria-roledescription': 'page map',
      'aria-label': `page map of ${block.idstr}: ${block.pages} pages, ${this.pagesPerCell} per cell; arrow keys move, Enter shows the page`,
    });
    this.canvas.style.aspectRatio = `${this.cols} / ${rows}`;
    if (this.cols < 128) this.canvas.style.width = `${(this.cols / 128) * 100}%`;
    this.cursor = h('div', { class: 'cursor', hidden: true });
    this.el = h('div', { class: 'heat' }, this.canvas, this.cursor);
    this.canvas.addEventListener('click', (e) => {
      const r = this.canvas.getBoundingClientRect();
      const x = Math.floor(((e.clientX - r.left) / r.width) * this.cols);
      const y = Math.floor(((e.clientY - r.top) / r.height) * rows);
      const cell = y * this.cols + x;
      if (cell >= 0 && cell < this.cells) this.select(cell);
    });
    this.canvas.addEventListener('keydown', (e) => {
      const moves: Record<string, number> = {
        ArrowLeft: -1,
        ArrowRight: 1,
        ArrowUp: -this.cols,
        ArrowDown: this.cols,
        PageUp: -this.cols * 8,
        PageDown: this.cols * 8,
      };
      if (e.key in moves) {
        this.pos = Math.max(0, Math.min(this.cells - 1, this.pos + moves[e.key]!));
        this.showCursor();
        e.preventDefault();
      } else if (e.key === 'Home' || e.key === 'End') {
        this.pos = e.key === 'Home' ? 0 : this.cells - 1;
        this.showCursor();
        e.preventDefault();
      } else if (e.key === 'Enter' || e.key === ' ') {
        this.select(this.pos);
        e.preventDefault();
      }
    });
    this.canvas.addEventListener('focus', () => this.showCursor());
    this.canvas.addEventListener('blur', () => (this.cursor.hidden = true));
    this.draw();
  }

  setMode(mode: HeatMode): void {
    this.mode = mode;
    this.draw();
  }

  /** Highlights and reports the page at `offset` of this block. */
  selectOffset(offset: number): void {
    const page = Math.floor(offset / this.model.summary.pageSize);
    this.select(Math.floor(page / this.pagesPerCell), page);
  }

  /** A cell covers `pagesPerCell` pages: a click shows its first, "go to" the exact page. */
  private select(cell: number, page = cell * this.pagesPerCell): void {
    this.pos = cell;
    this.showCursor(true);
    this.opts.onSelect(this.block.firstPage + page);
  }

  private showCursor(force = false): void {
    if (!force && document.activeElement !== this.canvas) return;
    const x = this.pos % this.cols;
    const y = Math.floor(this.pos / this.cols);
    const rows = this.canvas.height;
    Object.assign(this.cursor.style, {
      left: `${(x / this.cols) * 100}%`,
      top: `${(y / rows) * 100}%`,
      width: `${100 / this.cols}%`,
      height: `${100 / rows}%`,
    });
    this.cursor.hidden = false;
    const first = this.pos * this.pagesPerCell;
    this.canvas.setAttribute('aria-valuetext', `${this.block.idstr} offset ${hex(first * this.model.summary.pageSize)}`);
  }

  private draw(): void {
    const ctx = this.canvas.getContext('2d')!;
    const img = ctx.createImageData(this.canvas.width, this.canvas.height);
    const { sent, last } = this.model;
    let max = 1;
    for (let p = this.block.firstPage; p < this.block.firstPage + this.block.pages; p++) max = Math.max(max, sent[p]!);
    const heat = HEAT.map(rgb);
    const kinds = KIND_COLOURS.map(rgb);
    for (let c = 0; c < this.cells; c++) {
      const from = this.block.firstPage + c * this.pagesPerCell;
      const to = Math.min(this.block.firstPage + this.block.pages, from + this.pagesPerCell);
      let n = 0;
      let k = 0;
      for (let p = from; p < to; p++) {
        if (sent[p]! > n) n = sent[p]!;
        if (last[p]! > k) k = last[p]!;
      }
      let colour = UNSENT;
      if (n > 0) {
        if (this.mode === 'last') colour = kinds[k - 1]!;
        else colour = heat[max === 1 ? 0 : Math.min(heat.length - 1, Math.floor((Math.log(n) / Math.log(max)) * (heat.length - 1)))]!;
      }
      img.data.set([...colour, 255], c * 4);
    }
    ctx.putImageData(img, 0, 0);
  }
}

export function legend(mode: HeatMode, max: number): HTMLElement {
  if (mode === 'last')
    return h(
      'p',
      { class: 'legend' },
      h('span', { class: 'sw', style: `background:rgb(${UNSENT.join(',')})` }),
      h('span', { class: 'lg' }, 'not sent'),
      ...KINDS.flatMap((k, i) => [h('span', { class: 'sw', style: `background:${KIND_COLOURS[i]}` }), h('span', { class: 'lg' }, k)]),
    );
  return h(
    'p',
    { class: 'legend' },
    h('span', { class: 'sw', style: `background:rgb(${UNSENT.join(',')})` }),
    h('span', { class: 'lg' }, 'not sent'),
    h('span', {}, 'once'),
    ...HEAT.map((c) => h('span', { class: 'sw', style: `background:${c}` })),
    ` ${max} time${max === 1 ? '' : 's'} (log scale)`,
  );
}
