"""Data files of the Citus stand-in (a test double, NOT Citus): C library source, control file, SQL."""
