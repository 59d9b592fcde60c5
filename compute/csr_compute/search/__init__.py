"""The search and scoring algorithms of CSR, independent of files and specs."""
