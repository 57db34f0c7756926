"""What every layer uses: file I/O and stores, the machine, the garbage collector, the JSON codec, locks, scratch folders, problem records, packaged data."""
