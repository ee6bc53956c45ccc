from cli.client import main

main()
