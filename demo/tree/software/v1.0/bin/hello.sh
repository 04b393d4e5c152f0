#!/bin/sh
echo "hello from /cvmfs/demo.cvmfs.local"
