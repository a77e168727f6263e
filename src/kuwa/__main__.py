from kuwa.cli import main

main()
