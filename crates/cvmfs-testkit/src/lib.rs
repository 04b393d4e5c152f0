//! cvmfs-testkit
