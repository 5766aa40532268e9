// axfold train: the training run of training/trainer.h.
#include <cstdio>

#include "apps/commands.h"
#include "parallel/comm.h"

namespace axfold::apps {

int train_main(const TrainerOptions& o) {
    const std::string last = train(o);
    if (world_comm().rank() == 0)
        std::printf("trained %s to update %lld: %s\n", o.model_name.c_str(), (long long)o.steps, last.c_str());
    return 0;
}

}  // namespace axfold::apps
