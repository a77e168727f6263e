from kuwa.cli import main

if __name__ == "__main__":  # engines may start workers with "spawn", which re-imports this
    main()
