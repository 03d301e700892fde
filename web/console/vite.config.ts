import { defineConfig, type Plugin } from 'vite';

// preloadGraph has the page fetch the graph page's module (Cytoscape) while
// the entry module loads: the graph is the page the console opens on, and
// its module is only imported once the entry has run.
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
        const chunk = Object.values(ctx.bundle ?? {}).find((c) => c.type === 'chunk' && c.name === 'graph');
        if (!chunk) return [];
        return [{ tag: 'link', attrs: { rel: 'modulepreload', crossorigin: true, href: `${base}${chunk.fileName}` }, injectTo: 'head' }];
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
