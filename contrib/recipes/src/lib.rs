//! Runnable end-to-end recipes for Plasma. Each binary in `src/bin` is one recipe.
