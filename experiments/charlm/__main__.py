from experiments.charlm.main import main

main()
