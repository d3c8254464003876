import { h } from './dom.js';

/** A classic hex dump: offset, 16 bytes, ASCII. `mark` (absolute) is highlighted. */
export function hexView(bytes: Uint8Array, start: number, mark?: number, label = 'hex view'): HTMLElement {
  const pre = h('pre', { class: 'hex', tabindex: 0, role: 'region', 'aria-label': label });
  for (let i = 0; i < bytes.length; i += 16) {
    const row = bytes.subarray(i, i + 16);
    const line = h('span', { class: 'hexline' });
    line.append(h('span', { class: 'addr' }, (start + i).toString(16).padStart(10, '0')), '  ');
    let ascii = '';
    for (let j = 0; j < 16; j++) {
      if (j === 8) line.append(' ');
      if (j >= row.length) {
        line.append('   ');
        continue;
      }
      const b = row[j]!;
      const text = `${b.toString(16).padStart(2, '0')} `;
      if (mark === start + i + j) line.append(h('mark', { 'data-offset': mark }, text));
      else line.append(b === 0 ? h('span', { class: 'z' }, text) : text);
      ascii += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.';
    }
    line.append(' ', h('span', { class: 'ascii' }, ascii), '\n');
    pre.append(line);
  }
  return pre;
}
