from ssgen.cli import main

main()
