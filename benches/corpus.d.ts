/** Types of benches/corpus.js (deterministic JSON-lines benchmark corpus). */
export function mulberry32(seed: number): () => number;
export function corpusChunks(bytes: number, options?: { seed?: number; chunkSize?: number }): Generator<Buffer>;
export function generateCorpus(bytes: number, options?: { seed?: number; chunkSize?: number }): Buffer[];
