from experiments.translate.main import main

main()
