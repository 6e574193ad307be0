from experiments.stock.main import main

main()
