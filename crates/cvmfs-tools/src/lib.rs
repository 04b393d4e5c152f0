//! cvmfs-tools
