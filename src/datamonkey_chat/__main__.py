from datamonkey_chat.cli import main

main()
