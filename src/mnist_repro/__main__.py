from mnist_repro.cli import main

raise SystemExit(main())
