// Small helpers of the network client: a typed event emitter and a
// restartable timer.

type Listener<T> = (v: T) => void;

/** A typed event emitter. A listener that throws does not stop the others. */
export class Emitter<E> {
  private readonly ls = new Map<keyof E, Set<Listener<never>>>();

  /** Adds a listener; the returned function removes it. */
  on<K extends keyof E>(k: K, f: Listener<E[K]>): () => void {
    let s = this.ls.get(k);
    if (!s) this.ls.set(k, (s = new Set()));
    s.add(f as Listener<never>);
    return () => this.off(k, f);
  }

  off<K extends keyof E>(k: K, f: Listener<E[K]>): void {
    this.ls.get(k)?.delete(f as Listener<never>);
  }

  emit<K extends keyof E>(k: K, v: E[K]): void {
    const s = this.ls.get(k);
    if (!s) return;
    for (const f of [...s]) {
      try {
        (f as Listener<E[K]>)(v);
      } catch (e) {
        queueMicrotask(() => {
          throw e; // surface it without breaking the client's state
        });
      }
    }
  }
}

/** A one-shot timer that can be re-armed; at most one pending callback. */
export class Timer {
  private h: ReturnType<typeof setTimeout> | null = null;
  /** When the pending callback is due (ms since the epoch), or 0. */
  at = 0;

  set(ms: number, fn: () => void): void {
    this.clear();
    const d = Math.max(0, ms);
    this.at = Date.now() + d;
    this.h = setTimeout(() => {
      this.h = null;
      this.at = 0;
      fn();
    }, d);
  }

  /** Arms the timer unless it is already due no later than ms from now. */
  setEarlier(ms: number, fn: () => void): void {
    if (this.h !== null && this.at <= Date.now() + ms) return;
    this.set(ms, fn);
  }

  clear(): void {
    if (this.h !== null) clearTimeout(this.h);
    this.h = null;
    this.at = 0;
  }

  get active(): boolean {
    return this.h !== null;
  }
}

/** A promise with its settle functions. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => {
    resolve = a;
    reject = b;
  });
  return { promise, resolve, reject };
}
