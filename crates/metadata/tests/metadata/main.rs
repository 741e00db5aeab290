//! loupe-metadata against a replayed API server (recorded list and watch responses in the Kubernetes wire
//! format, served from 127.0.0.1), real cgroup v2 directories laid out as containerd, CRI-O and Docker lay
//! them, and the service's stream to a follower.

mod apiserver;
mod cgroups;
mod serve;
mod watch;
