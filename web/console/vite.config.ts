import { defineConfig } from 'vite';

// The bundle is committed and embedded by internal/consoleui, so the
// build must be byte-for-byte reproducible: content hashes only, no
// source maps with absolute paths, no timestamps.
export default defineConfig({
  base: '/ui/',
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
