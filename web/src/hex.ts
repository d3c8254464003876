import { h } from './dom.js';

/** Bytes per hex line: 16, or 8 on a phone-sized screen. */
export const hexWidth = (): number => (typeof matchMedia === 'function' && matchMedia('(max-width: 640px)').matches ? 8 : 16);

/** A classic hex dump: offset, bytes, ASCII. `mark` (absolute) is highlighted, or noted when past the bytes shown. */
export function hexView(bytes: Uint8Array, start: number, mark?: number, label = 'hex view', width = hexWidth()): HTMLElement {
  const pre = h('pre', { class: 'hex', tabindex: 0, role: 'region', 'aria-label': label });
  for (let i = 0; i < bytes.length; i += width) {
    const row = bytes.subarray(i, i + width);
    const hexPart = h('span', { class: 'bytes' });
    let ascii = '';
    for (let j = 0; j < width; j++) {
      if (j === 8) hexPart.append(' ');
      if (j >= row.length) {
        hexPart.append('   ');
        continue;
      }
      const b = row[j]!;
      const text = `${b.toString(16).padStart(2, '0')} `;
      if (mark === start + i + j) hexPart.append(h('mark', { 'data-offset': mark }, text));
      else hexPart.append(b === 0 ? h('span', { class: 'z' }, text) : text);
      ascii += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.';
    }
    pre.append(
      h(
        'span',
        { class: 'hexline' },
        h('span', { class: 'addr' }, (start + i).toString(16).padStart(10, '0')),
        '  ',
        hexPart,
        ' ',
        h('span', { class: 'ascii' }, ascii),
        '\n',
      ),
    );
  }
  if (mark !== undefined && mark >= start + bytes.length)
    pre.append(h('span', { class: 'eof' }, `offset ${mark} (0x${mark.toString(16)}) is past the last byte shown: the end of the file`));
  return pre;
}
