//! cvmfs-proxy
