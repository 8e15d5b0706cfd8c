/**
 * Deterministic benchmark corpus: JSON-lines database records (users, orders, events), as an
 * s3db.js backup part holds them. A seeded PRNG (mulberry32) makes every run byte-identical for a
 * given size and seed, so compression ratios are comparable across runs and implementations.
 *
 *   import { generateCorpus } from './corpus.js'; const chunks = generateCorpus(64 * 2 ** 20);
 *   node benches/corpus.js 16 > /tmp/corpus.jsonl      # 16 MiB to stdout
 */

/** @param {number} seed */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const FIRST = ['Ana', 'Bruno', 'Carla', 'Diego', 'Elisa', 'Fabio', 'Gina', 'Hugo', 'Iris', 'Joao', 'Kai', 'Lara', 'Marta', 'Nuno', 'Olga', 'Paulo', 'Rita', 'Sara', 'Tiago', 'Vera', 'Yuki', 'Zoe'];
const LAST = ['Silva', 'Santos', 'Oliveira', 'Souza', 'Lima', 'Pereira', 'Costa', 'Mueller', 'Schmidt', 'Tanaka', 'Smith', 'Garcia', 'Rossi', 'Dubois', 'Novak'];
const CITIES = ['Lisboa', 'Porto', 'Recife', 'Curitiba', 'Sao Paulo', 'Berlin', 'Austin', 'Osaka', 'Lyon', 'Krakow', 'Toronto', 'Nairobi'];
const STREETS = ['Rua das Flores', 'Avenida Central', 'Main Street', 'Hauptstrasse', 'Rue de la Paix', 'Calle Mayor', 'Elm Road'];
const PRODUCTS = ['keyboard', 'monitor', 'mouse', 'laptop stand', 'usb-c hub', 'webcam', 'headset', 'desk lamp', 'chair mat', 'cable kit', 'ssd 1tb', 'router'];
const STATUS = ['pending', 'paid', 'shipped', 'delivered', 'refunded', 'cancelled'];
const EVENTS = ['login', 'logout', 'view', 'add_to_cart', 'checkout', 'password_reset', 'profile_update'];
const AGENTS = ['Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0', 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15', 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0', 'okhttp/4.12.0'];

/**
 * Generator of JSON-lines chunks (about chunkSize bytes each, cut at line ends) totalling exactly
 * `bytes` bytes (the last line is cut to fit).
 * @param {number} bytes
 * @param {{ seed?: number, chunkSize?: number }} [options]
 * @returns {Generator<Buffer>}
 */
export function* corpusChunks(bytes, options = {}) {
  const rand = mulberry32(options.seed ?? 20240601);
  const chunkSize = options.chunkSize ?? 1024 * 1024;
  const pick = (arr) => arr[Math.floor(rand() * arr.length)];
  const hex = (n) => {
    let s = '';
    for (let i = 0; i < n; i++) s += Math.floor(rand() * 16).toString(16);
    return s;
  };
  const time = () => new Date(1_700_000_000_000 + Math.floor(rand() * 40_000_000_000)).toISOString();
  let produced = 0;
  let id = 0;
  let lines = [];
  let size = 0;
  while (produced < bytes) {
    id += 1;
    const kind = rand();
    let rec;
    if (kind < 0.3) {
      const first = pick(FIRST);
      const last = pick(LAST);
      rec = {
        id: `usr_${hex(12)}`,
        name: `${first} ${last}`,
        email: `${first.toLowerCase()}.${last.toLowerCase()}${Math.floor(rand() * 1000)}@example.com`,
        address: { street: `${pick(STREETS)} ${1 + Math.floor(rand() * 2000)}`, city: pick(CITIES), zip: String(10000 + Math.floor(rand() * 89999)) },
        plan: rand() < 0.7 ? 'free' : rand() < 0.8 ? 'pro' : 'enterprise',
        active: rand() > 0.1,
        createdAt: time(),
        _v: 1,
      };
    } else if (kind < 0.8) {
      const n = 1 + Math.floor(rand() * 4);
      const items = [];
      let total = 0;
      for (let i = 0; i < n; i++) {
        const price = Math.round(rand() * 50000) / 100;
        const qty = 1 + Math.floor(rand() * 3);
        total += price * qty;
        items.push({ sku: `SKU-${hex(6).toUpperCase()}`, name: pick(PRODUCTS), qty, price });
      }
      rec = { id: `ord_${hex(16)}`, userId: `usr_${hex(12)}`, items, total: Math.round(total * 100) / 100, currency: rand() < 0.6 ? 'EUR' : 'USD', status: pick(STATUS), createdAt: time(), updatedAt: time() };
    } else {
      rec = { id: `evt_${id}`, type: pick(EVENTS), userId: `usr_${hex(12)}`, ip: `10.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}`, userAgent: pick(AGENTS), at: time(), latencyMs: Math.floor(rand() * 900) };
    }
    const line = JSON.stringify(rec) + '\n';
    lines.push(line);
    size += line.length;
    if (size >= chunkSize || produced + size >= bytes) {
      let buf = Buffer.from(lines.join(''), 'latin1');
      if (produced + buf.length > bytes) buf = buf.subarray(0, bytes - produced);
      produced += buf.length;
      lines = [];
      size = 0;
      yield buf;
    }
  }
}

/**
 * The whole corpus in memory, as chunks of about 1 MiB.
 * @param {number} bytes
 * @param {{ seed?: number, chunkSize?: number }} [options]
 * @returns {Buffer[]}
 */
export function generateCorpus(bytes, options = {}) {
  return [...corpusChunks(bytes, options)];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const mib = Number(process.argv[2] ?? 16);
  for (const chunk of corpusChunks(mib * 1024 * 1024)) process.stdout.write(chunk);
}
