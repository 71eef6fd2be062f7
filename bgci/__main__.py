from bgci.cli import main

main()
