//! cvmfs-publish
