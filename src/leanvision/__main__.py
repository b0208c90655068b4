from leanvision.cli.main import main

main()
