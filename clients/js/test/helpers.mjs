// Test helpers: a seeded PRNG (failures print the seed) and random edits.
export function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (xs) => xs[Math.floor(next() * xs.length)],
    shuffle(xs) {
      for (let i = xs.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [xs[i], xs[j]] = [xs[j], xs[i]];
      }
      return xs;
    },
  };
}

const alphabet = [...'abcdefgh xyz😀👍🏽é中\n'];

/** One random edit (insert or delete) on text x. */
export function randomEdit(r, x) {
  if (x.length > 0 && r.int(3) === 0) {
    const pos = r.int(x.length);
    x.delete(pos, 1 + r.int(Math.min(6, x.length - pos)));
    return;
  }
  let s = '';
  for (let k = 1 + r.int(6); k > 0; k--) s += r.pick(alphabet);
  x.insert(r.int(x.length + 1), s);
}
