//! cvmfs-client
