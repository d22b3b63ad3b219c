# Rebuild the shipped models from scratch: `make models` (hours on a laptop CPU; minutes on a GPU).
# Each target trains into runs/ and exports the best weights in half precision into models/.
# The exact commands used for the files in models/ are recorded in their config.json ("command").

SHAKESPEARE_ARGS = --model lstm --layers 2 --hidden 512 --embed 64 --dropout 0.25 --batch-size 32 --seq-len 128 \
                   --lr 3e-3 --warmup 200 --min-lr-frac 0.05 --eval-every 500 --time-budget 110m --threads 1

FOLK_ARGS = --model lstm --layers 2 --hidden 512 --embed 64 --dropout 0.2 --batch-size 32 --seq-len 128 \
            --lr 3e-3 --warmup 200 --min-lr-frac 0.05 --eval-every 500 --time-budget 75m --threads 1

.PHONY: models shakespeare-model folk-model test

models: shakespeare-model folk-model

shakespeare-model:
	charrnn train shakespeare --out runs/shakespeare-2x512 $(SHAKESPEARE_ARGS)
	charrnn export runs/shakespeare-2x512 models/shakespeare

folk-model:
	charrnn corpora build folk
	charrnn train folk --out runs/folk-2x512 $(FOLK_ARGS)
	charrnn export runs/folk-2x512 models/folk

test:
	python -m pytest
