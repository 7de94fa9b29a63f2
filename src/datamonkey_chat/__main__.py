from datamonkey_chat.cli import main

if __name__ == "__main__":  # parse workers re-import the main module (multiprocessing)
    main()
