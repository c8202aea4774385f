"""Weekly red and black flags (红黑旗): formula, pure scoring, gathering, publishing."""
