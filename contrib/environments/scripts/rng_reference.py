"""Prints the NumPy values that the unit tests of src/rng.rs expect.

Run: python contrib/environments/scripts/rng_reference.py
"""

import numpy as np

print("numpy", np.__version__)
for seed in [0, 1, 42, 123, 2**32 + 5, 2**64 - 1, 2**127 + 7]:
    ss = np.random.SeedSequence(seed)
    print(seed, "pool", [hex(x) for x in ss.pool])
    print("  generate_state(4, uint64)", [hex(x) for x in ss.generate_state(4, np.uint64)])
    bg = np.random.PCG64(np.random.SeedSequence(seed))
    st = bg.state["state"]
    print("  pcg64 state", hex(st["state"]), "inc", hex(st["inc"]))
    print("  random_raw(3)", [hex(x) for x in bg.random_raw(3)])
    g = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
    print("  uniform(-0.05, 0.05, size=4)", repr(g.uniform(-0.05, 0.05, size=(4,)).tolist()))
    print("  random()", repr(g.random()))
