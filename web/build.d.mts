export function buildInspector(options?: { typecheck?: boolean; minify?: boolean }): Promise<string>;
