import { defineConfig, type Plugin } from 'vite';

// preloadGraph has the page fetch the graph page's module (Cytoscape.js)
// while the entry module loads: the graph is the page the console opens
// on, and its module is only imported once the entry has run.
function preloadGraph(): Plugin {
  let base = '/';
  return {
    name: 'meshlens-preload-graph',
    enforce: 'post',
    configResolved(c) {
      base = c.base;
    },
    transformIndexHtml: {
      order: 'post',
      handler(_html, ctx) {
        const bundle = ctx.bundle ?? {};
        const chunk = Object.values(bundle).find((c) => c.type === 'chunk' && c.name === 'graph');
        if (!chunk || chunk.type !== 'chunk') return [];
        // The module and the chunks it imports (a browser fetches those
        // only once it has the module), but the entry, which the page loads.
        const imports = chunk.imports.filter((f) => {
          const c = bundle[f];
          return !(c?.type === 'chunk' && c.isEntry);
        });
        return [chunk.fileName, ...imports].map((f) => ({
          tag: 'link',
          attrs: { rel: 'modulepreload', crossorigin: true, href: `${base}${f}` },
          injectTo: 'head' as const,
        }));
      },
    },
  };
}

// The bundle is committed and embedded by internal/consoleui, so the
// build must be byte-for-byte reproducible: content hashes only, no
// source maps with absolute paths, no timestamps.
export default defineConfig({
  base: '/ui/',
  plugins: [preloadGraph()],
  build: {
    outDir: '../../internal/consoleui/dist',
    emptyOutDir: true,
    sourcemap: false,
    target: 'es2022',
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 2000,
    assetsInlineLimit: 0,
  },
});
