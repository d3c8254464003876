export { xbzrleDecode } from './decode.js';
export { xbzrleEncode } from './encode.js';
export { xbzrleEncodeJs } from './encode-js.js';
export { MAX_RUN, getUleb, putUleb } from './uleb.js';
export { encodePage, decodePage } from './pages.js';
export { LruPageCache, QemuPageCache, createPageCache, type PageCache, type CachePolicy } from './page-cache.js';
