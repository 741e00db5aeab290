//! End to end: `px` cloud commands against `loupe up` (written next).
