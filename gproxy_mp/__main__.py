"""`python -m gproxy_mp`: the same command as the `gproxy-mp` console script."""

from gproxy_mp.cli import main

if __name__ == "__main__":
    main()
