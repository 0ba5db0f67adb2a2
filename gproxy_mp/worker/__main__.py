"""Process entry of a worker: `python -m gproxy_mp.worker --worker 0#1 --config JSON`."""

from gproxy_mp.worker.main import main

if __name__ == "__main__":
    main()
