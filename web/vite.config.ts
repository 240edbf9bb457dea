import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'

/**
 * The web client (plain TypeScript + DOM on @chat-api/client). `vite build web` writes web/dist,
 * which the server serves at `/`; `vite web` serves it in development and proxies the API to a
 * server on :8000 (`npm run dev`).
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: true },
  server: {
    proxy: { '/api': { target: 'http://127.0.0.1:8000', ws: true } },
  },
})
