import { describe, expect, it } from 'vitest';
import { startGcPacer } from '../../src/passthrough/gc-pacer.js';

describe('startGcPacer', () => {
  it('collects dead ArrayBuffers once they pass the threshold', async () => {
    const pacer = startGcPacer(8 * 1024 * 1024, 10);
    expect(pacer).toBeDefined();
    try {
      // 48 MiB of garbage, as socket reads leave it behind
      for (let i = 0; i < 768; i++) new Uint8Array(new ArrayBuffer(64 * 1024)).fill(1);
      for (let i = 0; i < 300 && process.memoryUsage().arrayBuffers > 8 * 1024 * 1024; i++) await new Promise((r) => setTimeout(r, 10));
      expect(pacer!.collections).toBeGreaterThan(0);
      expect(process.memoryUsage().arrayBuffers).toBeLessThan(8 * 1024 * 1024);
    } finally {
      pacer?.stop();
    }
  });

  it('asks for nothing while memory stays under the threshold', async () => {
    const pacer = startGcPacer(1024 * 1024 * 1024, 5);
    await new Promise((r) => setTimeout(r, 50));
    expect(pacer?.collections).toBe(0);
    pacer?.stop();
  });
});
