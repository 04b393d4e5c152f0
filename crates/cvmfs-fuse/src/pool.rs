//! A fixed set of worker threads for FUSE requests.

use crossbeam::channel::{unbounded, Sender};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Jobs run on `threads` workers; with 0 threads they run inline (`cvmfs2 -s`).
pub struct WorkerPool {
    sender: Option<Sender<Job>>,
}

impl WorkerPool {
    pub fn new(threads: usize) -> WorkerPool {
        if threads == 0 {
            return WorkerPool { sender: None };
        }
        let (sender, receiver) = unbounded::<Job>();
        for index in 0..threads {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("cvmfs-fuse-{index}"))
                .spawn(move || {
                    for job in receiver {
                        job();
                    }
                })
                .expect("spawning a FUSE worker thread");
        }
        WorkerPool { sender: Some(sender) }
    }

    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        match &self.sender {
            Some(sender) => {
                if let Err(returned) = sender.send(Box::new(job)) {
                    (returned.0)();
                }
            }
            None => job(),
        }
    }
}
