"""What crosses the package's edge: assets and datasets fetched into the cache, files written atomically,
resume records, the checks where arrays, data files and option values come in, and pickles read safely."""
