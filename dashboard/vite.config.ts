// Builds the operator dashboard (a static single-page app) into dist/dashboard, which Backhaul serves at `/`
// (src/api/dashboard.ts). `npm run dev:dashboard` serves it with hot reload and forwards the API to a Backhaul running
// on localhost:8080, so the session cookie is same-origin in development too.
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));
const backhaul = process.env['BACKHAUL_URL'] ?? 'http://localhost:8080';

export default defineConfig({
  root: here,
  // Relative asset URLs: the build works wherever it is mounted (also behind a reverse proxy under a prefix).
  base: './',
  plugins: [react()],
  build: {
    outDir: fileURLToPath(new URL('../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    sourcemap: false,
  },
  server: {
    proxy: {
      '/api': { target: backhaul, changeOrigin: false },
      '/metrics': { target: backhaul, changeOrigin: false },
    },
  },
  preview: {
    proxy: {
      '/api': { target: backhaul, changeOrigin: false },
      '/metrics': { target: backhaul, changeOrigin: false },
    },
  },
});
