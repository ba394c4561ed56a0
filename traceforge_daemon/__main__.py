from .cli import main

if __name__ == "__main__":  # reader processes import this module too (multiprocessing spawn)
    raise SystemExit(main())
