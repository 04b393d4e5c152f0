//! cvmfs-cache
