// A build script is required for cargo to unify build dependencies too.
fn main() {}
