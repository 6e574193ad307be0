from experiments.sentiment.main import main

main()
