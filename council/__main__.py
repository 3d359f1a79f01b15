from council.cli import main

raise SystemExit(main())
