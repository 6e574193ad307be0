from experiments.ball.main import main

main()
