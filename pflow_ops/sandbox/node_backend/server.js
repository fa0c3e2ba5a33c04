'use strict';
// Reference Pivotal Flow backend: Express, a pg Pool, ioredis and prom-client, as the real
// service is built. Run as
//   node --max-old-space-size=64 --report-on-fatalerror server.js --port N --redis-url URL
// with the PostgreSQL URL in $PFLOW_BACKEND_PG_DSN (never on the world-readable command line).
//
// Fault hooks are signals, so nothing on the HTTP surface can be abused:
//   SIGUSR1 / SIGUSR2  error mode on / off (a share of /api requests answers 500, /health passes)
//   SIGHUP             read ./fault (written by `pflow-ops sandbox break`) and act on it once:
//                      eventloop-block, heap-leak, heap-high or unhandled-rejection
//   SIGTERM / SIGINT   graceful shutdown: stop accepting, drain, close the pools, exit 0
// When $PFLOW_SANDBOX_OOM_FLAG names an existing file at start, it is removed and the process
// allocates off-heap memory until the container's memory limit kills it (docker backend-oom).

const fs = require('fs');
const path = require('path');
const express = require('express');
const v8 = require('v8');
const vm = require('vm');
const { Pool, types } = require('pg');
const Redis = require('ioredis');
const client = require('prom-client');

types.setTypeParser(20, (value) => Number(value)); // bigint ids as JSON numbers, as the API promises

const DSN_ENV = 'PFLOW_BACKEND_PG_DSN';
const ITEM_COLUMNS = 'id, name, description, price_cents, updated_at::text AS updated_at';

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 3000, redisUrl: 'redis://127.0.0.1:6379/0', errorRate: 0.5, cacheTtl: 60 };
  const names = { '--host': 'host', '--port': 'port', '--redis-url': 'redisUrl', '--error-rate': 'errorRate', '--cache-ttl': 'cacheTtl' };
  for (let i = 0; i < argv.length; i += 2) {
    const key = names[argv[i]];
    if (!key || argv[i + 1] === undefined) {
      console.error(`usage: server.js [--host H] [--port N] [--redis-url URL] [--error-rate R] [--cache-ttl S]; bad argument ${argv[i]}`);
      process.exit(2);
    }
    opts[key] = ['port', 'errorRate', 'cacheTtl'].includes(key) ? Number(argv[i + 1]) : argv[i + 1];
  }
  opts.pgDsn = process.env[DSN_ENV];
  if (!opts.pgDsn) {
    console.error(`$${DSN_ENV} is required`);
    process.exit(2);
  }
  return opts;
}

function log(level, msg) {
  process.stdout.write(`${new Date().toISOString()} ${level} ${msg}\n`);
}

function oneLine(err) {
  return String((err && err.message) || err).split(/\s+/).join(' ').trim() || 'error';
}

function exhaustMemory() {
  log('WARNING', 'allocating until the memory limit is hit (sandbox fault backend-oom)');
  const hoard = [];
  for (;;) {
    const buf = Buffer.alloc(16 * 1024 * 1024, 1); // off-heap: the container limit, not V8's
    hoard.push(buf);
  }
}

function metrics() {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  const requests = new client.Counter({
    name: 'http_requests_total', help: 'HTTP requests served, by method, route and status.',
    labelNames: ['method', 'route', 'status'], registers: [registry],
  });
  const duration = new client.Histogram({
    name: 'http_request_duration_seconds', help: 'HTTP request latency.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry],
  });
  const lookups = new client.Counter({
    name: 'pivotal_cache_lookups_total', help: 'API cache lookups by result.',
    labelNames: ['cache_type', 'result'], registers: [registry],
  });
  // The hit rate covers the last minute: a ratio since start would keep CacheLowHitRate firing
  // long after the cache recovered.
  const recent = [];
  const forget = (now) => { while (recent.length && recent[0][0] < now - 60000) recent.shift(); };
  new client.Gauge({
    name: 'pivotal_cache_hit_rate', help: 'Share of API cache lookups answered from the cache over the last minute.',
    labelNames: ['cache_type'], registers: [registry],
    collect() {
      forget(Date.now());
      const hits = recent.filter((r) => r[1]).length;
      this.set({ cache_type: 'redis' }, recent.length ? hits / recent.length : NaN);
    },
  });
  // Not among prom-client's defaults: what "heap near its limit" is measured against.
  new client.Gauge({
    name: 'pivotal_nodejs_heap_size_limit_bytes', help: 'V8 heap size limit (--max-old-space-size and the young generation).',
    registers: [registry],
    collect() { this.set(v8.getHeapStatistics().heap_size_limit); },
  });
  for (const result of ['hit', 'miss', 'error']) lookups.inc({ cache_type: 'redis', result }, 0);
  return {
    registry,
    observe(method, route, status, seconds) {
      requests.inc({ method, route, status: String(status) });
      duration.observe(seconds);
    },
    cacheLookup(result) {
      lookups.inc({ cache_type: 'redis', result });
      recent.push([Date.now(), result === 'hit']);
      forget(Date.now());
    },
  };
}

class DependencyDown extends Error {}

function makeApp(opts, m) {
  const pool = new Pool({ connectionString: opts.pgDsn, application_name: 'pivotal-flow-backend', max: 8, connectionTimeoutMillis: 2000, idleTimeoutMillis: 30000 });
  pool.on('error', (err) => log('WARNING', `idle PostgreSQL client error: ${oneLine(err)}`));
  // Fail fast: with retries and an offline queue, /health would stall while Redis is down.
  const redis = new Redis(opts.redisUrl, {
    connectTimeout: 1000, commandTimeout: 1000, maxRetriesPerRequest: 0, enableOfflineQueue: false,
    retryStrategy: () => 500, lazyConnect: false,
  });
  redis.on('error', () => {}); // reported by the checks; ioredis reconnects on its own
  let errorMode = false;
  const started = Date.now();

  async function query(sql, params = []) {
    try {
      return (await pool.query(sql, params)).rows;
    } catch (err) {
      throw new DependencyDown(oneLine(err));
    }
  }

  async function check(probe) {
    const t0 = process.hrtime.bigint();
    let error = null;
    try { await probe(); } catch (err) { error = oneLine(err); }
    const latency = Number(process.hrtime.bigint() - t0) / 1e6;
    return { ok: error === null, latency_ms: Math.round(latency * 1000) / 1000, error };
  }

  const app = express();
  app.disable('x-powered-by');
  app.use((req, res, next) => {
    const t0 = process.hrtime.bigint();
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const route = req.route ? req.baseUrl + req.route.path : 'unmatched';
      m.observe(req.method, route, res.statusCode, seconds);
      log('INFO', `${req.method} ${req.originalUrl} ${res.statusCode} ${(seconds * 1000).toFixed(1)}ms`);
    });
    next();
  });
  app.get('/health', async (req, res) => {
    const [postgres, redisCheck] = await Promise.all([check(() => query('SELECT 1')), check(() => redis.ping())]);
    const healthy = postgres.ok && redisCheck.ok;
    res.status(healthy ? 200 : 503).json({
      status: healthy ? 'ok' : 'degraded', checks: { postgres, redis: redisCheck },
      pid: process.pid, uptime_s: (Date.now() - started) / 1000,
    });
  });
  app.get('/metrics', async (req, res) => {
    res.set('Content-Type', m.registry.contentType).send(await m.registry.metrics());
  });
  const injected = (req, res, next) => {
    if (errorMode && Math.random() < opts.errorRate) return res.status(500).json({ error: 'internal server error' });
    return next();
  };
  const api = (fn) => async (req, res) => {
    try {
      const [status, body] = await fn(req);
      res.status(status).json(body);
    } catch (err) {
      if (!(err instanceof DependencyDown)) throw err;
      res.status(503).json({ error: `database unavailable: ${err.message}` });
    }
  };
  const intArg = (value, fallback) => (/^-?\d+$/.test(String(value)) ? Number(value) : fallback);
  app.get('/api/items', injected, api(async (req) => {
    const limit = Math.min(Math.max(intArg(req.query.limit, 20), 1), 100);
    const offset = Math.max(intArg(req.query.offset, 0), 0);
    const items = await query(`SELECT ${ITEM_COLUMNS} FROM items ORDER BY id LIMIT $1 OFFSET $2`, [limit, offset]);
    return [200, { items }];
  }));
  app.get('/api/items/:id', injected, api(async (req) => {
    if (!/^\d+$/.test(req.params.id)) return [404, { error: 'not found' }];
    const key = `item:${req.params.id}`;
    let cached = null;
    try {
      cached = await redis.get(key);
      m.cacheLookup(cached !== null ? 'hit' : 'miss');
    } catch (err) {
      m.cacheLookup('error');
    }
    if (cached !== null) return [200, JSON.parse(cached)];
    const rows = await query(`SELECT ${ITEM_COLUMNS} FROM items WHERE id = $1`, [Number(req.params.id)]);
    if (!rows.length) return [404, { error: 'not found' }];
    // Serving from the database is the degraded-but-working path: a failed SETEX is fine.
    redis.setex(key, opts.cacheTtl, JSON.stringify(rows[0])).catch(() => {});
    return [200, rows[0]];
  }));
  app.use((req, res) => res.status(404).json({ error: 'not found' }));

  return {
    app, pool, redis,
    setErrorMode(on) { errorMode = on; },
  };
}

// The Node.js failure modes `sandbox break` injects: each is what a real bug does.
const HEAP_HIGH_SHARE = 0.93;
const YOUNG_RESERVE_BYTES = 48 * 1048576;
const FAULTS = {
  'eventloop-block': () => {
    log('WARNING', 'running a synchronous loop on the event loop (sandbox fault backend-eventloop-block)');
    setImmediate(() => { for (;;) { /* a CPU-bound loop that never yields */ } });
  },
  'heap-leak': () => {
    log('WARNING', 'retaining every request context (sandbox fault backend-heap-leak)');
    const leak = [];
    const grow = () => {
      leak.push(Array.from({ length: 100000 }, Math.random)); // ~0.8 MB of doubles, never freed
      setTimeout(grow, 5);
    };
    grow();
  },
  'heap-high': () => {
    // A leak caught on its way to the abort: live heap held at HEAP_HIGH_SHARE of the old
    // generation's limit (V8's heap_size_limit less the young generation's 48 MiB reserve, the
    // line BackendHeapNearLimit and RB-01 use), no further growth, so the process serves on.
    // The live size is measured after full GCs (gc exposed here only), not guessed from a
    // heapUsed that still holds garbage.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc');
    gc();
    const target = HEAP_HIGH_SHARE * (v8.getHeapStatistics().heap_size_limit - YOUNG_RESERVE_BYTES);
    const baseline = process.memoryUsage().heapUsed;
    const held = [];
    while (held.length * 131072 < target - baseline) held.push(Array.from({ length: 16384 }, Math.random));
    globalThis.pivotalHeapHeld = held; // retained for good
    gc();
    log('WARNING', `holding ${Math.round(process.memoryUsage().heapUsed / 1048576)} MB of live heap, ` +
      `${Math.round(HEAP_HIGH_SHARE * 100)} % of the old generation's limit (sandbox fault backend-heap-high)`);
  },
  'unhandled-rejection': () => {
    log('WARNING', 'starting a job whose promise rejects with no handler (sandbox fault backend-unhandled-rejection)');
    Promise.reject(new Error('invoice sync failed: upstream returned 502'));
  },
};

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const oomFlag = process.env.PFLOW_SANDBOX_OOM_FLAG;
  if (oomFlag && fs.existsSync(oomFlag)) {
    fs.unlinkSync(oomFlag);
    exhaustMemory();
  }
  const m = metrics();
  const svc = makeApp(opts, m);
  const server = svc.app.listen(opts.port, opts.host, () => {
    log('INFO', `listening on http://${opts.host}:${opts.port} (pid ${process.pid})`);
  });
  server.on('error', (err) => {
    // EADDRINUSE and friends: nothing to serve, so say why and exit non-zero.
    console.error(`FATAL: cannot listen on ${opts.host}:${opts.port}: ${err.stack || err}`);
    process.exit(1);
  });

  process.on('SIGUSR1', () => { svc.setErrorMode(true); log('WARNING', `error mode ON: ${Math.round(opts.errorRate * 100)}% of /api requests fail`); });
  process.on('SIGUSR2', () => { svc.setErrorMode(false); log('WARNING', 'error mode OFF'); });
  process.on('SIGHUP', () => {
    let fault = '';
    try { fault = fs.readFileSync(path.join(process.cwd(), 'fault'), 'utf8').trim(); } catch (err) { /* none */ }
    const act = FAULTS[fault];
    if (act) act(); else log('WARNING', `SIGHUP without a known fault (${fault || 'no ./fault file'})`);
  });
  // An unhandled rejection leaves the process in an unknown state: log it with its stack, exit.
  process.on('unhandledRejection', (reason) => {
    console.error(`FATAL: UnhandledPromiseRejection: ${(reason && reason.stack) || reason}`);
    process.exit(1);
  });
  let stopping = false;
  const shutdown = (signal) => {
    if (stopping) return;
    stopping = true;
    log('INFO', `received ${signal}, shutting down`);
    server.close(async () => {
      await Promise.allSettled([svc.pool.end(), svc.redis.quit()]);
      log('INFO', 'stopped');
      process.exit(0);
    });
    server.closeIdleConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

main();
