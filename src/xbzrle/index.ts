export { xbzrleDecode } from './decode.js';
export { xbzrleEncode } from './encode.js';
export { xbzrleEncodeJs } from './encode-js.js';
export { MAX_RUN, getUleb, putUleb } from './uleb.js';
