//! cvmfs-fuse
